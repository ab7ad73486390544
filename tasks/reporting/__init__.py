"""Reports: the one Report type, publishing (artifacts and the audit store), notifications, progress."""
