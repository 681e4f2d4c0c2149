"""halfveil's second chain verifier, written from docs/protocol.md alone."""
