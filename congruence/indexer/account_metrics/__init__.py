"""Account metrics computed at ingest: ``compute`` (engagement rate, posts per week, sponsored
share and ratio), ``signals`` (authenticity flags), ``recompute`` (after every ingest). Their
rows and SQL are ``store.account_metrics``; what the account page plots, ``store.account_views``."""
