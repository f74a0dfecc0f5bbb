"""The shells people see: the command line (the only click importer), the plain and live
views (the only rich importer), graph rendering.

The top stage: it may import every stage below, and nothing imports it.
"""
