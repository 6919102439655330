.config tiny
        NOP 1
