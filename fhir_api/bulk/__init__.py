"""Long work run as jobs: Bulk Data `$export`, `$reindex`, and their storage.

A floor above the store and search (it may import both and smart_auth.access) and below the
REST surface, which only starts these jobs and reports on them.
"""
