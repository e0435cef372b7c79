"""skelmae.data"""
