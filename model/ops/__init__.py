"""The records of operating a site: users and their roles, trace events, jobs."""
