"""ASV benchmark suite of dermsr (see asv.conf.json and docs/performance.md)."""
