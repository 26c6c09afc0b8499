"""The `conductor` command and the process plumbing it needs (embedded broker, topic set-up, dev runner)."""
