"""Meta Conversions API for CRM: the ``meta_conversion_events`` asset (per distributor) and the sensor that runs it."""
