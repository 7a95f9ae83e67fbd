"""Wire protocol v1: sans-IO framing and state machine, plus the one module
(``transport``) that does I/O."""
