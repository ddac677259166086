"""Models. Ensemble models hold K independent models as stacked parameters of shape [K, ...]."""
