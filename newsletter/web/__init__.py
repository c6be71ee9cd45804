"""The HTTP drivers: the public site (`newsletter serve`) and the editor's preview."""
