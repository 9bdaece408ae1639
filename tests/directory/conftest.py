from pg_cluster import pg_url

__all__ = ["pg_url"]  # the fixture, for every test module of this folder
