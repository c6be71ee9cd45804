"""The project database: subscribers, issues, the send ledger, reviews and estimates."""
