"""What a site sends where: export targets, the export queue, the lock that keeps two syncs
off one target, and the upload URLs a later sync resumes."""
