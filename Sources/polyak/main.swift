print("polyak")
