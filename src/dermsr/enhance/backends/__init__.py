"""Built-in backends, one module per runtime. Each imports its runtime lazily."""
