"""Who to contact: lapsed and aggrieved customers, their value and churn risk, holdouts and uplift."""
