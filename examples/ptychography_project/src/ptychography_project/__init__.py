"""A ptychography project whose reconstruction is tested on the canonical fixture."""
