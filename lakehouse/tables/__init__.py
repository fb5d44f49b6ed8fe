"""Format adapters behind one table interface (:class:`lakehouse.tables.base.LakehouseTable`)."""
