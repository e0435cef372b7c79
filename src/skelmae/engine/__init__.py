"""skelmae.engine"""
