"""Groups of ``FeatureEngineeringClient`` methods, kept in their own modules so that ``client.py``
stays readable. Each is a mixin over the client's context and services; like the client, they hold
no logic of their own."""
