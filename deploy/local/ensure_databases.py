"""Creates the named PostgreSQL databases if they do not exist (the stack's Dagster and MLflow stores).
Connection from the DAGSTER_PG_* variables that env.sh sets."""

import os
import sys

import psycopg2
from psycopg2 import sql


def main(names: list[str]) -> None:
    conn = psycopg2.connect(host=os.environ["DAGSTER_PG_HOST"], port=os.environ["DAGSTER_PG_PORT"],
                            user=os.environ["DAGSTER_PG_USER"], password=os.environ.get("DAGSTER_PG_PASSWORD", ""),
                            dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in names:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                print(f"created database {name}")
    conn.close()


if __name__ == "__main__":
    main(sys.argv[1:])
