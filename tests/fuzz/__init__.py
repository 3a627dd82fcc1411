"""Property-based tests of every parser that reads untrusted bytes (issue 8, hostile input)."""
