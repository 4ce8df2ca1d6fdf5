"""Monitoring: feature/prediction drift, live model performance, pipeline health anomalies."""
