"""After scoring: realized performance once labels mature, SLA checks, alerts, retraining."""
