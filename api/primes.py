def primes_below(bound: int) -> list[int]:
    """All primes below `bound`, by the sieve of Eratosthenes."""
    if bound < 3:
        return []
    sieve = bytearray([1]) * bound
    sieve[0:2] = b"\x00\x00"
    for number in range(2, int(bound**0.5) + 1):
        if sieve[number]:
            sieve[number * number :: number] = bytes(len(range(number * number, bound, number)))
    return [number for number, is_prime in enumerate(sieve) if is_prime]
