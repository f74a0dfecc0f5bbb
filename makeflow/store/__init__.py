"""What is remembered on disk: the state store, content digests, the stat cache and file
moves, the project lock.

The lowest stage: it imports nothing of makeflow but `errors` and `gcpause`. xxhash is
imported by `hashing` alone.
"""
