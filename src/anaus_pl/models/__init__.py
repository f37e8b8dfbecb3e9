"""Networks: LP-SAM, SSL encoders with their FPN, projector/predictor and downstream heads."""
