"""Market data: providers of daily prices, the NYSE trading calendar and index weights."""
