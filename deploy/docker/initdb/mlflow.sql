-- The MLflow tracking server's own database, beside Dagster's (POSTGRES_DB).
CREATE DATABASE fmops_mlflow;
