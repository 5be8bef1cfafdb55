"""skyrelay: replication of camera-network archives between sites."""

__version__ = "0.1.0"
