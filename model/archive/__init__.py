"""What a site holds: statuses, events and file records with their bytes; storing, staging,
listing and removing them."""
