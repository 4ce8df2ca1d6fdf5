"""Change-aware automation: landing observation, policies, jobs, schedules, alerts."""
