"""The benchmark behind `make bench`: the service under load against its own ceiling (issue #7)."""
