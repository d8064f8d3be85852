"""The whole config checked before anything is built: rules, memory, seeds."""
