"""Email: a support mailbox served in proper threads (issue 12; not yet registered as a channel)."""
