"""The spool inventory: spools, RFID spools from the AMS, what each job took, low filament, a copy on Spoolman."""
