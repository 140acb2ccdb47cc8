"""Adapters to distributed data frameworks; each lives in its own module and imports its
framework only when used (``pip install 'dermsr[ray]'`` for :mod:`dermsr.integrations.ray`).
"""

__all__: list[str] = []
