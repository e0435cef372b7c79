"""skelmae.viz"""
