"""All I/O of the runbooks and their pure analysis, one folder per area of the guide (backup, monitoring, database,
dependencies, platform, reporting); `targets`, `retry` and `slots` are shared by all of them."""
