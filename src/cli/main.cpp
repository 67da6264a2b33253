#include <iostream>
int main() { std::cout << "varcode\n"; return 0; }
