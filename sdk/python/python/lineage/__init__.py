from lineage._native import commit, LineageError
