"""HTTP surfaces: thin routes and middlewares. No SQL, no monday calls, no policy here."""
