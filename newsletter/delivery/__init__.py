"""Delivery over SMTP: sessions and reply classification, the concurrent sender, and the
built-in capture server."""
