.config tpu9000
