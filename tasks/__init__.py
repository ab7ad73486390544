"""All I/O of the runbooks, one module per system, plus pure modules for analysis and report rendering."""
