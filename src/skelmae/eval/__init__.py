"""skelmae.eval"""
