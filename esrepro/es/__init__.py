"""The ES core: noise table, fitness shaping, optimizer, observation statistics and the
OpenAI-ES strategy (paper section 2, Algorithms 1 and 2; reference code es_distributed/)."""
