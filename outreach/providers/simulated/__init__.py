"""The simulated provider of ``outreach simulate``: accepts everything, and on the simulated
clock feeds back deliveries, hard bounces and complaints at configured rates."""
