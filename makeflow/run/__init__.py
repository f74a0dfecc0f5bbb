"""Doing it: `build()`, the scheduler, the executors, what a build reports through
(`Reporter`) and what it returns (`BuildResult`), and `clean`.

May import `plan`, `define` and `store`; shows nothing itself: the shells above implement
`Reporter`.
"""
