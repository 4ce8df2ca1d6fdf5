"""Landing -> raw: source declarations (`spec`) and the landing-file parser (`parse`)."""
