"""Persistence layer of an imagery-inference model runner: job, region, endpoint and feature state in DynamoDB."""

__version__ = "0.1.0"
