"""Account metrics computed at ingest: ``compute`` (engagement rate, posts per week, sponsored
share and ratio), ``signals`` (authenticity flags), ``store`` (PostgreSQL), ``views`` (plot data)."""
