"""The backend's project logic: workspaces, rounds of correction queries, answers, export."""
