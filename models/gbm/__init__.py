"""The gradient-boosted value and churn models, boosted from the BTYD forecast (:mod:`tiercast.models.btyd`): the
LightGBM settings search, the abstract stacked model and its two concrete models."""
